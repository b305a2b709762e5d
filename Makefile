# The two commands of the README: `make demo` (main job on the embedded synthetic faces) and `make test`.
# Both create the virtual environment .venv first when it is missing or older than the dependency files.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.smfd-installed

.PHONY: venv test demo clean-demo

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=70.1" wheel
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q --no-build-isolation basicsr==1.4.2
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps gfpgan==1.3.8  # ArcFace arch of the identity column; its metadata pins an old torch
	$(PIP) install -q --no-deps nafnetlib==0.1.0  # NAFNet-w32, the benchmark's deblurring reference (pins old torch)
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import basicsr, smfd_arch; from basicsr.utils.registry import ARCH_REGISTRY as A; A.get('SMFDUNet')"
	touch $(STAMP)

test: $(STAMP)
	OMP_NUM_THREADS=2 $(PY) -m pytest tests -q -p no:cacheprovider

demo: $(STAMP)
	$(PY) scripts/run_demo.py

clean-demo:
	rm -rf datasets/demo experiments/demo_* results/demo results/demo_* tb_logger/demo_*
