from finmon.cli import main

if __name__ == "__main__":  # guarded: the inference process (spawn) imports this module
    main()
