import json

from bench import bench_gemma


def test_the_prepared_gpu_check_runs_at_a_tiny_shape_on_the_cpu(tmp_path):
    # bench/device_check.sh runs this at the 26B-A4B shape on a GPU; here its every arm, seconds on a CPU
    out = tmp_path / "bench_gemma.json"
    args = "--shape tiny --device cpu --threads 1 --context 16 --canvas 8 --steps 2 4 --repeats 1 --warmup 0"
    args += " --no-generate --quantize none int8 int4"
    bench_gemma.main([*args.split(), "--out", str(out)])
    result = json.loads(out.read_text())
    arms = {a["quantize"]: a for a in result["arms"]}
    assert list(arms) == ["none", "int8", "int4"]
    for a in arms.values():
        assert [r["steps"] for r in a["rows"]] == [2, 4] and all(r["tokens_per_s"] > 0 for r in a["rows"])
        assert a["held_bytes"] == a["fit_weights_bytes"]  # what the packed model holds: what unmask fit says
        assert a["peak_bytes"] is None  # measured on CUDA only
    assert arms["int4"]["held_bytes"] < arms["int8"]["held_bytes"] < arms["none"]["held_bytes"]
