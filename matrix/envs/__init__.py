"""matrix/envs"""
