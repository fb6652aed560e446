import MuxCatCLI

await MuxCatEntry.main()
