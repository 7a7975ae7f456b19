# The two commands of the README:
#   make demo   set up, then run the main job on the embedded default model (MiniLM)
#   make test   set up, then run the test suite
# Set-up is idempotent: it installs into .venv once, and again only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.edgeport-installed

.PHONY: setup setup-tensorrt test-venvs demo test bench bench-x86 bench-int8 bench-ssh bench-budget bench-compress bench-request bench-gpu bench-mrpc bench-sweep bench-tune bench-tuned-targets readme-check matrix system-deps clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[openvino,tflite,devices,sweep,tune,test]'
	touch $@

# NVIDIA ModelOpt's ONNX quantizer (tensorrt-int8) and Polygraphy: their own venv, since ModelOpt
# pins an older onnx than edgeport's. nvidia-modelopt goes in with --no-deps (its [onnx] extra
# would swap in onnxruntime-gpu and cupy); scripts/modelopt-requirements.txt pins the rest (CPU).
MODELOPT_VENV ?= .venv-modelopt
setup-tensorrt: $(MODELOPT_VENV)/.edgeport-installed

$(MODELOPT_VENV)/.edgeport-installed: scripts/modelopt-requirements.txt
	test -x $(MODELOPT_VENV)/bin/python || $(PYTHON) -m venv $(MODELOPT_VENV)
	$(MODELOPT_VENV)/bin/python -m pip install -q -c constraints.txt torch==2.13.0
	$(MODELOPT_VENV)/bin/python -m pip install -q -r scripts/modelopt-requirements.txt
	$(MODELOPT_VENV)/bin/python -m pip install -q --no-deps nvidia-modelopt==0.47.0
	touch $@

# The device tests' "device" Pythons (.test-venvs/: the real onnxruntime-migraphx wheel).
test-venvs:
	PYTHON=$(PYTHON) bash scripts/test-venvs.sh

demo: setup
	$(BIN)/edgeport export minilm --target openvino-int8,onnx-int8 --out runs/minilm

# System packages the device and report tests use (an SSH server, adb, Chromium);
# installed only when missing, and only where apt-get is available.
system-deps:
	@bash scripts/system-deps.sh

# Two pytest workers (pytest-xdist), each test file whole on one of them (its module fixtures
# built once): the suite keeps about one core busy when run serially (measured: 19.2 min
# serially, 13.7 min with two workers, on the README's 2-core machine).
TEST_WORKERS ?= 2
test: setup setup-tensorrt test-venvs system-deps
	EDGEPORT_NO_COMPONENT_SKIPS=1 EDGEPORT_TEST_ARTIFACTS=test-artifacts $(BIN)/python -m pytest -q -rs -p no:cacheprovider -m "not matrix" -n $(TEST_WORKERS) --dist loadfile --durations=25

# The task x family x target matrix (about half an hour on 2 cores): every cell built and run,
# recorded in test-artifacts/matrix.json, then rendered into bench/results/matrix.json and the README.
matrix: setup
	EDGEPORT_TEST_ARTIFACTS=test-artifacts $(BIN)/python -m pytest -q -rs -p no:cacheprovider -m matrix tests/test_matrix.py
	$(BIN)/python bench/matrix.py --from test-artifacts/matrix.json --readme README.md

# The side-by-side benchmark (not part of the tests): peers in their own venvs, then every path.
bench: setup
	bash bench/setup_peers.sh
	$(BIN)/python bench/compare.py

# The narrower benchmarks behind individual claims in the README.
bench-x86 bench-int8 bench-ssh: setup
	$(BIN)/python bench/$(subst bench-x86,x86_targets,$(subst bench-int8,int8_budget,$(subst bench-ssh,ssh_vs_local,$@))).py

# The budget's reported agreement vs agreement on SST-2 sentences nothing chose on (needs ../shared).
bench-budget: setup
	$(BIN)/python bench/sst2_budget.py

# Compression techniques alone and combined on the SST-2 classifier (needs ../shared; ~1 h here).
bench-compress: setup
	$(BIN)/python bench/compression.py

# The request path: real texts through edgeport.runtime vs PyTorch and the peers (~30 min here).
bench-request: setup
	bash bench/setup_peers.sh
	$(BIN)/python bench/request_path.py

# The GPU targets built here up to the device boundary, host-side figures (needs setup-tensorrt),
# and what each choice of the tensorrt-int8 Q/DQ graph is worth.
bench-gpu: setup setup-tensorrt
	$(BIN)/python bench/gpu_targets.py
	$(BIN)/python bench/trt_int8_placement.py

# A pair classifier: MiniLM fine-tuned on MRPC (needs ../shared; ~25 min here), exported with pair data.
bench-mrpc: setup
	$(BIN)/python bench/mrpc_pairs.py

# The 6-job MiniLM sweep sequentially and on the embedded Ray.
bench-sweep: setup
	$(BIN)/python bench/sweep.py

# `edgeport tune recipes/sst2-tune.yaml`, then its chosen artifact timed beside the uncompressed
# OpenVINO INT8 artifact and PyTorch (needs ../shared; the hours are in bench/results/tune.md).
bench-tune: setup
	$(BIN)/python bench/tune.py

# The tuned recipe's student compressed once and built as openvino-int4 and as openvino-int8 with
# INT4 tables, timed beside the uncompressed OpenVINO INT8 artifact (needs ../shared; about 45 min).
bench-tuned-targets: setup
	$(BIN)/python bench/tuned_targets.py

# The README's measured tables, re-rendered from bench/results/*.json: fails when they differ.
readme-check: setup
	$(BIN)/python bench/readme.py --check

clean:
	rm -rf $(VENV) $(MODELOPT_VENV) .test-venvs runs
