"""matrix/results"""
