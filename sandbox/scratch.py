"""Emptying the sandbox's scratch dirs after a program (stdlib only), whatever tree the candidate left.

No recursion (1,100 nested dirs broke ``shutil.rmtree``) and no long paths (a tree deeper than PATH_MAX
cannot be named from the root): it walks with one directory fd at a time and a stack of names, fixing
permissions on the way down. Every process of the program is dead by then, so nothing moves underneath.
"""
import os
import stat

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def empty_dir(root):
    """Remove everything inside ``root`` (kept itself); False if something could not be removed.

    Linear in the tree: each directory is listed once, its subdirectories are kept as a list of names."""
    try:
        fd = os.open(root, DIR_FLAGS)
    except OSError:
        return False
    path, levels = [], []   # names from root down to fd's directory; subdirectories still to visit, per level
    try:
        levels.append(clear_files(fd))
        while True:
            if levels[-1]:
                sub = levels[-1].pop()
                os.chmod(sub, 0o700, dir_fd=fd)
                child = os.open(sub, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
                path.append(sub)
                levels.append(clear_files(fd))
                continue
            levels.pop()
            if not path:
                return True
            parent = os.open("..", DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(path.pop(), dir_fd=fd)
    except OSError:
        return False
    finally:
        os.close(fd)


def clear_files(fd):
    """Unlink every non-directory in the directory ``fd``; the names of its subdirectories."""
    subdirs = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    return subdirs


def is_empty(path):
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def restore_mode(path, mode):
    """Give a scratch root back the mode it had at start (a candidate may have chmod'ed it to 000)."""
    try:
        if stat.S_IMODE(os.lstat(path).st_mode) != mode:
            os.chmod(path, mode)
        return True
    except OSError:
        return False
