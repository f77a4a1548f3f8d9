"""matrix/report"""
