"""The ``filesystem.Filesystem`` Connect service: the handler table."""

from ...connect import server_stream, unary
from .list_dir import list_dir
from .make_dir import make_dir
from .move import move
from .remove import remove
from .stat import stat
from .watch import create_watcher, get_watcher_events, remove_watcher, watch_dir

ROUTES = {
    "/filesystem.Filesystem/Stat": unary(stat),
    "/filesystem.Filesystem/ListDir": unary(list_dir),
    "/filesystem.Filesystem/MakeDir": unary(make_dir),
    "/filesystem.Filesystem/Move": unary(move),
    "/filesystem.Filesystem/Remove": unary(remove),
    "/filesystem.Filesystem/WatchDir": server_stream(watch_dir, {"keepalive": {}}),
    "/filesystem.Filesystem/CreateWatcher": unary(create_watcher),
    "/filesystem.Filesystem/GetWatcherEvents": unary(get_watcher_events),
    "/filesystem.Filesystem/RemoveWatcher": unary(remove_watcher),
}
