# The two commands of the README: `make run` and `make test`. Each (re)installs the
# project-local virtual environment when it is missing or older than what defines it.
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test install

run: $(STAMP)
	$(VENV)/bin/mtlspec run specs/quickstart.yaml

test: $(STAMP)
	$(VENV)/bin/python -m pytest

install: $(STAMP)

$(STAMP): pyproject.toml tools/install.sh
	bash tools/install.sh
