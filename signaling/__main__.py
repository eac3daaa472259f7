"""Allow `python -m signaling` as an alias of the `sprechzimmer` command."""

from signaling.cli import main

raise SystemExit(main())
