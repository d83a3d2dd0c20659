from warpstyle.app.cli import main

main()
