from fzrcli.main import main

main()
