"""matrix/diagnosis/symbols"""
