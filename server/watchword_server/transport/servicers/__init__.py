"""servicers"""
