from wingman.api.cli.main import main

main()
