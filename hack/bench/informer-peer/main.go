// informer-peer: the client-go side of hack/bench/informer. It runs one
// shared informer for Pods (all namespaces, no resync, no handlers), waits for
// the initial sync, returns freed heap to the OS, prints
// {"synced":true,"objects":N} and keeps the synced cache until SIGINT/SIGTERM,
// so that the benchmark can read its VmRSS exactly as it does for the C
// informer-watch --hold-after-sync.
//
// managedFields are stripped before objects enter the cache, as
// controller-runtime does by default: the peer is the leanest common Go setup.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

func stripManagedFields(obj interface{}) (interface{}, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "path to the kubeconfig")
	timeout := flag.Duration("sync-timeout", 5*time.Minute, "give up when the cache has not synced by then")
	flag.Parse()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "informer-peer: %v\n", err)
		os.Exit(1)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "informer-peer: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(stripManagedFields))
	pods := factory.Core().V1().Pods().Informer()
	factory.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), pods.HasSynced) {
		fmt.Fprintln(os.Stderr, "informer-peer: the Pod cache did not sync")
		os.Exit(1)
	}
	runtime.GC()
	debug.FreeOSMemory()
	fmt.Printf("{\"synced\":true,\"objects\":%d}\n", len(pods.GetStore().ListKeys()))
	<-ctx.Done()
	factory.Shutdown()
}
