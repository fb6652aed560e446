print("runtime-manager: not built yet")
