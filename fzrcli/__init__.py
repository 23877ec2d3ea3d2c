"""fzr: approved DingTalk co-owner requests become XBB CRM owners."""

__version__ = "0.1.0"
