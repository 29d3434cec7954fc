"""The sandbox's refusals: a Bot API error answer in Telegram's words, and a
control API error."""

# Telegram's words for each refusal.
CHAT_NOT_FOUND = (400, "Bad Request: chat not found")
KICKED = (403, "Forbidden: bot was kicked from the channel chat")
NO_RIGHTS = (400, "Bad Request: need administrator rights in the channel chat")
NOT_MEMBER = (403, "Forbidden: bot is not a member of the channel chat")
CANT_DELETE = (400, "Bad Request: message can't be deleted")
MEMBERS_INACCESSIBLE = (400, "Bad Request: member list is inaccessible")
NOT_MODIFIED = (400, "Bad Request: message is not modified: specified new message content and reply markup are"
                     " exactly the same as a current content and reply markup of the message")
CANT_INITIATE = (403, "Forbidden: bot can't initiate conversation with a user")
TO_BOTS = (403, "Forbidden: bot can't send messages to bots")
EDIT_NOT_FOUND = (400, "Bad Request: message to edit not found")
USER_NOT_FOUND = (400, "Bad Request: user not found")
QUERY_INVALID = (400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
POLL_CONFLICT = (409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is"
                      " running")


class Refusal(Exception):
    """A Bot API error answer: Telegram's status code and description."""

    def __init__(self, code: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


class ControlError(Exception):
    """A control API call refused: its HTTP status and why (a JSON body)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status
