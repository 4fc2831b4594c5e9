fn area(w: f64, h: f64) -> f64 {
    let a = w * h;
<CURSOR>
    a
}
