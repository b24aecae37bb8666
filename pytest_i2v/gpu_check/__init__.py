"""``python -m pytest_i2v gpu-check``: one command that runs the study through the real plugin on a
GPU and cross-checks what the plugin measured (about 8 minutes on an RTX 4090 or an H200).

    python -m pytest_i2v gpu-check [--out DIR] [--device cuda:N] [--dry-run]
                                   [--model random|tiny|DIR] [--pipeline NAME]

It writes a temporary test module, runs pytest on it in subprocesses (a fresh process is part of
check (d), and an induced OOM must not take the checking process down), reads the results JSONs
and judges them with pure functions (no pytest or torch import at module level):

    (a) allocator peak <= NVML peak <= device total   (f) fast mode predicts a full run
    (b) CUDA-event stage total vs synchronised total  (g) model_cpu_offload lowers allocated peak
    (c) per-step times sum to the loop's own timing   (h) (a)-(c) on a second GPU
    (d) 512p after 1024p == 512p in a fresh process   (i) NVML read the clocks under every repeat
    (e) an induced OOM is recorded, the next test passes
    (j) the work signature is the same in a fresh process, and its timed rows account for the step

The modules, top down: ``command`` (the plan for this machine, the runs, the files written),
``suite`` (the test module and the pytest subprocesses), ``checks`` (all ten in order) over
``memory_checks`` (a, d, e, g), ``timing_checks`` (b, c, f), ``device_checks`` (h, i) and
``signature_check`` (j), ``summary`` (the text), ``plan`` and ``records`` (what the results hold).

``--dry-run`` runs the same code on the CPU: the tiny model on simulated GPUs
(``pytest_i2v.simulated_plugin``), at the cpu profile's sizes. Its memory checks are judged as on a
GPU; its stage-sum checks are judged (exact per repeat), the fast-mode check is shown, not judged
(CPU noise).

``--pipeline NAME`` (default i2vgen-xl) checks another adapter: four sizes from about half to all of
its native width and height (each valid for the pipeline), its native frames, steps and guidance;
on the dry run the same 32-128 pixel sizes, rounded to its size multiple. I2VGen-XL keeps the
study's 256p..1024p presets. Check (g) is not applicable to a pipeline without model_cpu_offload.

A pipeline whose model accepts one size only (``Constraints.fixed_size``: cogvideox-i2v, 720x480) is
checked at that size alone, on a GPU and on the dry run: check (d), which needs a smaller size after
the largest, is not applicable (and its fresh-process run is not made). Its dry-run marks name the
fixed size too (a mark at another size is refused at collection); a profile written for the dry run
(the simulated GPU's, with the cpu profile's size scaling) runs the tiny model at 1/8 of it.
"""

from pytest_i2v.gpu_check.command import GpuCheckReport, main, make_plan, run_gpu_check

__all__ = ["GpuCheckReport", "main", "make_plan", "run_gpu_check"]
