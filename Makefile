# Two entry points (README): `make demo` (install + run the six stages) and `make test` (install + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PRESET ?=
# (empty PRESET: the CLI picks by hardware — fast with a CUDA GPU, cpu without one; confs/cpu.conf)
CLIP   ?=
RUN    ?= demo
SHAPE      ?= a tall and skinny person
APPEARANCE ?= a female soldier
MOTION     ?= arguing

.PHONY: demo test install notebooks bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# Test encoders (CLIP=tiny, tiny:<path>, oracle:…) need AVATARCLIP_TEST_ENCODERS=1 (docs/design.md §4).
TEST_ENV = $(if $(filter tiny tiny:% oracle:%,$(CLIP)),AVATARCLIP_TEST_ENCODERS=1)

demo: install
	$(TEST_ENV) $(BIN)/avatarclip run --run $(RUN) $(if $(PRESET),--preset $(PRESET)) $(if $(CLIP),--clip $(CLIP)) \
	  --shape "$(SHAPE)" --appearance "$(APPEARANCE)" --motion "$(MOTION)"

test: install node_modules/.installed
	$(BIN)/python -m pytest -q tests

notebooks: install
	$(BIN)/python scripts/make_notebooks.py

bench: install
	for b in bench/*.py; do $(BIN)/python $$b; done

clean:
	rm -rf exp/tiny-* .pytest_cache
