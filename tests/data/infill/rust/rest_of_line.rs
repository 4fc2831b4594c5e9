fn main() {
    let v: Vec<i32> = (1..10).map(|x| x * x).collect();
    println!("{:?}", <CURSOR>);
}
