import RepeaterdCLI

await RepeaterdEntry.main()
