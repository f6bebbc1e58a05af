"""placeholder"""
class Plugin:
    def __init__(self, config):
        self.config = config
