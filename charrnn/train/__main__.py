from charrnn.cli.train import main

main()
