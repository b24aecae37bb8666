"""The study's suites: select them with -m (sweep, tradeoffs, precision, memory_options,
dynamic_resolution, pipelines, pipeline_memory_options, speed_fidelity)."""

SUITE_MARKERS = {
    "sweep": "the study's resolution sweep (256p-1024p)",
    "tradeoffs": "frames/steps trade-offs at 768p and the frames sweep",
    "precision": "fp32 vs fp16 vs bf16 at 512p",
    "memory_options": "memory-saving options at 768p, each against the plain run",
    "dynamic_resolution": "output resolution picked from the input image size and the memory",
    "pipelines": (
        "SVD, Wan 2.1/2.2, LTX-Video, CogVideoX and HunyuanVideo-I2V at their native settings"
    ),
    "pipeline_memory_options": (
        "the large pipelines' memory-saving options, each against its plain run"
    ),
    "speed_fidelity": (
        "each cache a pipeline runs against its native run: speed-up and output fidelity"
    ),
}


def pytest_configure(config):
    for name, text in SUITE_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
