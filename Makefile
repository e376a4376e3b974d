# Thin aliases for bin/dev, which does the work (and sets itself up on first use).
.PHONY: run test lint

run:
	bin/dev run

test:
	bin/dev test

lint:
	bin/dev lint
