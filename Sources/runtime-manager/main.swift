import RuntimeManagerCLI

await RuntimeManagerEntry.main()
