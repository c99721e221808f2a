from charrnn.bench import main

main()
