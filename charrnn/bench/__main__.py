from charrnn.cli.bench import main

main()
