print("repeaterd: not built yet")
