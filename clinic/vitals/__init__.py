"""vitals"""
