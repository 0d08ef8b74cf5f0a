"""haltlab.checks"""
