# nfkit's documented entry points: make demo, make test, make bench.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: all venv test faults bench demo stubs docs clean mutation mutation-quick

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall when the project metadata changes.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench,dpdk,mutation,docs]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# The fault-injection suite alone (root: it mounts tmpfs; docs/testing.md).
faults: $(STAMP)
	$(PY) -m pytest -q tests/test_faults.py

# Mutation testing of the packet-corrupting modules (docs/testing.md): about two hours on
# 2 cores; writes the score table into docs/testing.md and docs/mutation-survivors.md.
mutation: $(STAMP)
	$(PY) tools/mutation.py

# The CI subset (vector/hash.py, about two minutes): fails below 90 %.
mutation-quick: $(STAMP)
	$(PY) tools/mutation.py --quick --fresh --check 90 --no-docs

bench: $(STAMP)
	$(PY) bench/run.py --out docs/benchmarks.md

# The browsable API reference from the docstrings (pdoc), every header's fields in a table:
# build/api/index.html.  Fails on a warning or a broken link (tests/test_api_docs.py runs it).
docs: $(STAMP)
	$(PY) docs/build_api.py build/api

# The typed accessor blocks of the header classes, regenerated from their FIELDS
# (tests/test_typing.py fails while they are out of date).
stubs: $(STAMP)
	$(PY) -m nfkit.packets._stubs

# The main job on bundled data: ping4d answers the ICMP echo requests of echo.pcap.
demo: $(STAMP)
	@echo "== nfkit run examples/ping4d/ping4d.py -c examples/ping4d/ping4d.toml"
	$(VENV)/bin/nfkit run examples/ping4d/ping4d.py -c examples/ping4d/ping4d.toml --no-status
	@echo
	@echo "== the replies, decoded (nfkit dump examples/ping4d/replies.pcap)"
	$(VENV)/bin/nfkit dump examples/ping4d/replies.pcap
	@echo
	@echo "ping4d read 9 requests from examples/ping4d/echo.pcap (4 IPv4, 5 IPv6), answered"
	@echo "the 4 IPv4 ones and aborted the IPv6 ones, as capsule's ping4d does."
	@echo "Output pcap: examples/ping4d/replies.pcap (open it with tcpdump -nn -r or Wireshark)."

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
