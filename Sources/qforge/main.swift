print("qforge")
