from ks.cli import main

raise SystemExit(main())
