"""Only for ``scrapyd-deploy``, which builds the egg with ``python setup.py bdist_egg``.

Everything (name, packages, the ``scrapy`` entry point that tells scrapyd the settings
module) is declared in pyproject.toml; ``pip install .`` does not need this file.
Without it, scrapyd-deploy would write a setup.py of its own into the checkout.
"""

from setuptools import setup

setup()
