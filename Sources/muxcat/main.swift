print("muxcat: not built yet")
