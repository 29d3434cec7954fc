"""Faults armed through the control API: the next calls of a Bot API
method fail as Telegram (or the proxy in front of it) sometimes does."""
import dataclasses

FAULT_KINDS = ("429", "500", "502", "stall_after_post")
CHAT_TYPES = ("channel", "private")
BAD_GATEWAY = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"


@dataclasses.dataclass
class Fault:
    kind: str  # one of FAULT_KINDS
    count: int  # calls left to fail
    retry_after: int = 5  # 429's retry_after, seconds
    stall_s: float = 30.0  # stall_after_post: how long the answer is held
    chat_type: str | None = None  # only calls naming a chat of this type (CHAT_TYPES); None: any call

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


class Faults:
    """Faults armed for the next calls of a method ("*": any method), in the
    order they were armed; kept in memory, gone on restart or reset. A fault
    with a chat_type waits for a call naming a chat of that type (a channel
    post, or the bot's message to a user: both are sendMessage)."""

    def __init__(self):
        self.armed: dict[str, list[Fault]] = {}

    def arm(self, method: str, fault: Fault) -> None:
        self.armed.setdefault(method, []).append(fault)

    def take(self, method: str, chat_type: str | None) -> Fault | None:
        """The fault this call meets, if any (`chat_type`: of the chat it names)."""
        for key in (method, "*"):
            queue = self.armed.get(key) or []
            for fault in queue:
                if fault.chat_type not in (None, chat_type):
                    continue
                fault.count -= 1
                if fault.count <= 0:
                    queue.remove(fault)
                return fault
        return None

    def as_json(self) -> dict:
        return {method: [fault.as_json() for fault in queue] for method, queue in self.armed.items() if queue}

    def clear(self) -> None:
        self.armed.clear()
