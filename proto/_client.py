"""placeholder"""
class Capabilities: pass
class ClientConnection: pass
class ClientTransaction: pass
