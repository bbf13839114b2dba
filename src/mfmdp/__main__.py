"""`python -m mfmdp ...`: the same CLI as the `mfmdp` command."""

from mfmdp.cli import main

main()
