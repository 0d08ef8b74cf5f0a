"""stub"""
__all__ = ["canonical", "check_symmetric_root", "concrete_choices"]


def canonical(run):
    raise NotImplementedError


def check_symmetric_root(run):
    pass


def concrete_choices(edges, perms, ids):
    raise NotImplementedError
