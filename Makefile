# Shortcuts for the README's two commands.
.PHONY: demo test setup
demo:
	bash scripts/dev.sh demo
test:
	bash scripts/dev.sh test
setup:
	bash scripts/dev.sh setup
