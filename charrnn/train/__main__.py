from charrnn.train.cli import main

main()
