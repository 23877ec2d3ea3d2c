from fzrcli.cli import main

main()
