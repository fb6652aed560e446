import RuntimeClientCLI

await RuntimeClientEntry.main()
