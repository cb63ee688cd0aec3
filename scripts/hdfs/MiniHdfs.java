import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

/**
 * A NameNode and one DataNode in one JVM for Weir's tests (Hadoop's MiniDFSCluster).
 *
 * Usage: MiniHdfs DATA_DIR NAMENODE_PORT CONTROL_PORT. Prints "ready hdfs://127.0.0.1:PORT" once
 * the cluster is up. The control port takes one command per connection: "restart-namenode"
 * (stops and starts the NameNode on the same port, answering "ok" when it is active again) or
 * "stop".
 */
public class MiniHdfs {
    public static void main(String[] args) throws Exception {
        File dir = new File(args[0]);
        int port = Integer.parseInt(args[1]);
        int control = Integer.parseInt(args[2]);
        Configuration conf = new Configuration();
        conf.set("dfs.blocksize", "4194304");
        conf.set("dfs.namenode.fs-limits.min-block-size", "1024");
        conf.set("dfs.replication", "1");
        conf.set("dfs.permissions.enabled", "false");
        conf.set("dfs.datanode.hostname", "127.0.0.1");
        conf.set("hadoop.security.authentication", "simple");
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, dir.getAbsolutePath());
        MiniDFSCluster dfs = new MiniDFSCluster.Builder(conf)
                .nameNodePort(port)
                .numDataNodes(1)
                .format(true)
                .build();
        dfs.waitActive();
        System.out.println("ready hdfs://127.0.0.1:" + dfs.getNameNodePort());
        System.out.flush();
        try (ServerSocket server = new ServerSocket(control, 8, InetAddress.getLoopbackAddress())) {
            while (true) {
                try (Socket s = server.accept()) {
                    BufferedReader in = new BufferedReader(
                            new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
                    PrintWriter out = new PrintWriter(s.getOutputStream(), true);
                    String cmd = in.readLine();
                    if ("restart-namenode".equals(cmd)) {
                        dfs.restartNameNode(true);
                        dfs.waitActive();
                        out.println("ok");
                    } else if ("stop".equals(cmd)) {
                        out.println("ok");
                        dfs.shutdown();
                        System.exit(0);
                    } else {
                        out.println("unknown command: " + cmd);
                    }
                } catch (Exception e) {
                    System.err.println("control: " + e);
                }
            }
        }
    }
}
