from superres.cli import main

main()
