"""``python -m mdxfer`` is the ``mdxfer`` command."""

from mdxfer.cli.main import app

if __name__ == "__main__":
    app(prog_name="mdxfer")
