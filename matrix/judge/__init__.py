"""matrix/judge"""
