from llmtrace_otel.cli import main

raise SystemExit(main())
