print("runtime-client: not built yet")
