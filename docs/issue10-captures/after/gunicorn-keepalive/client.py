import socket, time, sys
s = socket.create_connection(("10.213.241.2", 8080))
req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
s.sendall(req); print("first:", s.recv(4096).split(b"\r\n")[0], flush=True)
time.sleep(3.5)
try:
    s.sendall(req); d = s.recv(4096); print("second:", d[:20], flush=True)
    s.sendall(req); d = s.recv(4096); print("third:", d[:20], flush=True)
except OSError as e:
    print("error:", e, flush=True)
