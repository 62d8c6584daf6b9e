# Everyday commands; each is a thin alias for `python3 dev.py <command>`.
.PHONY: run demo test lint bench unit integration fault browser screenshots

run:
	python3 dev.py run

demo:
	python3 dev.py demo

test:
	python3 dev.py test

unit:
	python3 dev.py test tests/unit

integration:
	python3 dev.py test -m "integration and not fault"

fault:
	python3 dev.py test -m fault

browser:
	python3 dev.py test -m browser

screenshots:
	python3 dev.py screenshots

lint:
	python3 dev.py lint

bench:
	python3 dev.py bench
