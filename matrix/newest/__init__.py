"""matrix/newest"""
