"""``python -m minisentry``: the same as the ``minisentry`` command."""

from minisentry.cli import main  # absolute: worker processes run this file by path

# Worker processes (stages.process_workers) import the parent's __main__ under another name: only
# run the CLI when this really is the program being run.
if __name__ == "__main__":
    main()
